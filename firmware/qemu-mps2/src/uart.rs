//! A polled transmit-only driver for the Arm CMSDK APB UART (the MPS2 boards' UART0..4),
//! as an [`embedded_io::Write`] sink.
//!
//! To use another board, replace this module with that board's UART (or USB, or RTT)
//! implementing `embedded_io::Write`: the rest of the firmware only sees the trait.

use core::convert::Infallible;

/// Base address of UART0 on QEMU's mps2-an385 and mps2-an386 (`-serial` number 0).
pub const UART0_BASE: usize = 0x4000_4000;
/// Baud rate divider for 115200 baud from the board's 25 MHz peripheral clock. QEMU
/// ignores the rate, but the CMSDK UART requires a divider of at least 16.
pub const BAUDDIV_115200: u32 = 25_000_000 / 115_200;

// Register offsets and bits (Arm CMSDK APB UART, Cortex-M System Design Kit TRM).
const DATA: usize = 0x000;
const STATE: usize = 0x004;
const CTRL: usize = 0x008;
const BAUDDIV: usize = 0x010;
const STATE_TX_FULL: u32 = 1 << 0;
const CTRL_TX_ENABLE: u32 = 1 << 0;

/// A CMSDK APB UART with its transmitter enabled.
#[derive(Debug)]
pub struct CmsdkUart {
    base: usize,
}

impl CmsdkUart {
    /// Programs the UART at `base` with divider `bauddiv` and enables its transmitter.
    ///
    /// # Safety
    ///
    /// `base` must be the address of a CMSDK APB UART's register block, and while the
    /// returned value is in use no other code may program or write to that UART.
    pub unsafe fn new(base: usize, bauddiv: u32) -> CmsdkUart {
        let uart = CmsdkUart { base };
        uart.write_register(BAUDDIV, bauddiv);
        uart.write_register(CTRL, CTRL_TX_ENABLE);
        uart
    }

    fn read_register(&self, offset: usize) -> u32 {
        // SAFETY: `base` is a CMSDK UART's register block (the contract of `new`) and
        // `offset` one of its word-aligned registers; device registers are read volatile.
        unsafe { core::ptr::read_volatile((self.base + offset) as *const u32) }
    }

    fn write_register(&self, offset: usize, value: u32) {
        // SAFETY: as in `read_register`; this value is the UART's only user (`new`).
        unsafe { core::ptr::write_volatile((self.base + offset) as *mut u32, value) }
    }

    fn wait_until_ready(&self) {
        while self.read_register(STATE) & STATE_TX_FULL != 0 {
            core::hint::spin_loop();
        }
    }
}

impl embedded_io::ErrorType for CmsdkUart {
    type Error = Infallible;
}

impl embedded_io::Write for CmsdkUart {
    /// Sends every byte, waiting for room in the one-byte transmit buffer before each.
    fn write(&mut self, bytes: &[u8]) -> Result<usize, Infallible> {
        for &byte in bytes {
            self.wait_until_ready();
            self.write_register(DATA, u32::from(byte));
        }
        Ok(bytes.len())
    }

    /// Waits until the last byte has left the transmit buffer.
    fn flush(&mut self) -> Result<(), Infallible> {
        self.wait_until_ready();
        Ok(())
    }
}
