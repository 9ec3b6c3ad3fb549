# Primitives shared by the shell and the board adapters (firmware/hal), which must not import the shell:
# the clock every task sleeps on, and a bounded mailbox.
