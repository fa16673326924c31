//! The exported libc interposers, grouped by what they observe.

pub mod exec;
pub mod fs;
pub mod process;

/// Calls the real function `$sym` of type `$ty`, or fails with ENOSYS
/// (returning `$fail`) when no next definition exists.
macro_rules! call_real {
    ($sym:ident: $ty:ty, ($($a:expr),* $(,)?), $fail:expr) => {{
        // SAFETY: `$ty` is the C prototype of `$sym`.
        match unsafe { $crate::real::$sym.get::<$ty>() } {
            // SAFETY: forwarding the caller's arguments unchanged.
            Some(f) => unsafe { f($($a),*) },
            None => {
                // SAFETY: errno is this thread's slot.
                unsafe { *libc::__errno_location() = libc::ENOSYS };
                $fail
            }
        }
    }};
}
pub(crate) use call_real;
