# HOST ONLY (never on a board): MicroPython's `neopixel` driver as virtual hardware. Keeps the pixels'
# (r, g, b) and what write() last sent, so the host board runs the ESP32 adapter's PixelLed unchanged.


class NeoPixel:
    def __init__(self, pin, n, bpp=3, timing=1):
        self.pin = pin
        self.n = n
        self.pixels = [(0, 0, 0)] * n
        self.shown = list(self.pixels)   # what the strip shows: the pixels at the last write()
        self.writes = 0

    def __len__(self):
        return self.n

    def __setitem__(self, i, rgb):
        self.pixels[i] = tuple(rgb)

    def __getitem__(self, i):
        return self.pixels[i]

    def fill(self, rgb):
        for i in range(self.n):
            self.pixels[i] = tuple(rgb)

    def write(self):
        self.shown = list(self.pixels)
        self.writes += 1
