//! The only unsafe code in the workload: installing signal dispositions through libc, which std
//! does not offer. Running as PID 1 in a container, a signal with no handler is ignored, so without
//! this `docker stop` would always wait for the grace period and kill.

#![allow(unsafe_code)]

use libc::c_int;

const TERMINATING: [c_int; 2] = [libc::SIGTERM, libc::SIGINT];

extern "C" fn exit_now(_signal: c_int) {
    // SAFETY: `_exit` is async-signal-safe; every line was flushed when printed, so nothing is
    // lost by skipping the exit handlers.
    unsafe { libc::_exit(0) }
}

/// SIGTERM and SIGINT end the process at once with exit code 0.
pub fn exit_on_terminate() {
    let handler = exit_now as extern "C" fn(c_int) as libc::sighandler_t;
    for signal in TERMINATING {
        // SAFETY: `exit_now` only calls an async-signal-safe function, and the signal numbers are
        // valid constants.
        unsafe { libc::signal(signal, handler) };
    }
}

/// SIGTERM and SIGINT are ignored (so a stop has to wait for its grace period and then kill).
pub fn ignore_terminate() {
    for signal in TERMINATING {
        // SAFETY: `SIG_IGN` is always a valid disposition for these signals.
        unsafe { libc::signal(signal, libc::SIG_IGN) };
    }
}
