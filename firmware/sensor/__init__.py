# Sensor decoders (pure): Open CGM broadcast v1 and the Bluetooth SIG CGM Service.
