//! Lines to standard error that never panic. `eprintln!` panics when standard error cannot be
//! written (a pipe whose reader is gone, a full disk): a line nobody can read must not change
//! an exit code (to 101) or a served verdict (attack findings).

use std::io::Write;

/// Writes `message` and a line break to standard error, whatever becomes of it.
pub fn say(message: &str) {
    let _ = writeln!(std::io::stderr(), "{message}");
}

/// `eprintln!` without its panic: the formatted line goes through [`say`].
macro_rules! err {
    ($($arg:tt)*) => {
        $crate::say::say(&format!($($arg)*))
    };
}

pub(crate) use err;
