//! Keeping the stream fd alive when the program closes or replaces fds.

use core::ffi::{c_int, c_uint};
use core::sync::atomic::Ordering;

use super::call_real;
use crate::stream::{self, CLOBBERED_PID, FD, OWNER_PID, is_stream_fd};
use crate::sys;

#[unsafe(no_mangle)]
pub unsafe extern "C" fn close(fd: c_int) -> c_int {
    type F = unsafe extern "C" fn(c_int) -> c_int;
    if is_stream_fd(fd) {
        // Pretend success: the program believes it closed an fd it never
        // opened, and we keep recording.
        return 0;
    }
    call_real!(close: F, (fd), -1)
}

/// The program is about to make `fd` (our stream) a copy of another fd:
/// move the stream out of the way first.
fn evacuate(fd: c_int) {
    if !is_stream_fd(fd) {
        return;
    }
    let pid = sys::getpid();
    if OWNER_PID.load(Ordering::Relaxed) != pid {
        // vfork child: the fd table is ours alone but the memory is the
        // parent's, so we cannot move the fd; stop writing to it instead.
        CLOBBERED_PID.store(pid, Ordering::Relaxed);
        return;
    }
    let moved = stream::move_high_keep(fd);
    if moved >= 0 {
        FD.store(moved, Ordering::Relaxed);
    }
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn dup2(old: c_int, new: c_int) -> c_int {
    type F = unsafe extern "C" fn(c_int, c_int) -> c_int;
    if old != new {
        evacuate(new);
    }
    call_real!(dup2: F, (old, new), -1)
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn dup3(old: c_int, new: c_int, flags: c_int) -> c_int {
    type F = unsafe extern "C" fn(c_int, c_int, c_int) -> c_int;
    if old != new {
        evacuate(new);
    }
    call_real!(dup3: F, (old, new, flags), -1)
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn close_range(first: c_uint, last: c_uint, flags: c_int) -> c_int {
    type F = unsafe extern "C" fn(c_uint, c_uint, c_int) -> c_int;
    let ours = FD.load(Ordering::Relaxed);
    if !is_stream_fd(ours) || (ours as c_uint) < first || (ours as c_uint) > last {
        return call_real!(close_range: F, (first, last, flags), -1);
    }
    // Split the range around our fd.
    let ours = ours as c_uint;
    let mut ret = 0;
    if first < ours {
        ret = call_real!(close_range: F, (first, ours - 1, flags), -1);
    }
    if ret == 0 && ours < last {
        ret = call_real!(close_range: F, (ours + 1, last, flags), -1);
    }
    ret
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn closefrom(low: c_int) {
    type F = unsafe extern "C" fn(c_int);
    let ours = FD.load(Ordering::Relaxed);
    if !is_stream_fd(ours) || ours < low {
        call_real!(closefrom: F, (low), ());
        return;
    }
    if low < ours && sys::close_range(low.max(0) as u32, (ours - 1) as u32, 0) < 0 {
        // Kernels before 5.9: close one by one (our fd is below ~1000).
        for fd in low.max(0)..ours {
            sys::close(fd);
        }
    }
    call_real!(closefrom: F, (ours + 1), ());
}
