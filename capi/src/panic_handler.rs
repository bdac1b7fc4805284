//! The `#[panic_handler]` of bare-metal builds (feature `panic-handler`, without `std`).
//!
//! A `no_std` static library must provide one; the C firmware that links the library has no
//! Rust runtime of its own. The engine reports bad input as error codes, so a panic here is a
//! bug: the handler parks the core in a loop, where a watchdog or a debugger finds it. (The
//! bare-metal targets abort on panic; nothing unwinds into C.)

use core::panic::PanicInfo;

#[panic_handler]
fn panic(_info: &PanicInfo<'_>) -> ! {
    loop {
        core::hint::spin_loop();
    }
}
