//! One boxed error type for the harness, plus a `context` helper so every error says what was
//! being done (which image, which path, which command) and why it failed.

use std::fmt;

/// Any error, boxed; `?` converts most errors (and `String`s) into it.
pub type Error = Box<dyn std::error::Error + Send + Sync + 'static>;

/// The harness's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// An error with a message saying what was being done, and its cause.
struct WithContext {
    message: String,
    source: Option<Error>,
}

impl fmt::Display for WithContext {
    // The whole chain on one line: test failures print it once and nothing is lost.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)?;
        if let Some(source) = &self.source {
            write!(f, ": {source}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for WithContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl std::error::Error for WithContext {}

/// Adds a message to an error (or turns a `None` into one).
pub trait Context<T> {
    /// Wraps the error with `message`.
    fn context(self, message: impl Into<String>) -> Result<T>;
    /// Wraps the error with a message built only when there is an error.
    fn with_context<M: Into<String>>(self, message: impl FnOnce() -> M) -> Result<T>;
}

impl<T, E: Into<Error>> Context<T> for std::result::Result<T, E> {
    fn context(self, message: impl Into<String>) -> Result<T> {
        self.map_err(|e| wrap(message.into(), Some(e.into())))
    }

    fn with_context<M: Into<String>>(self, message: impl FnOnce() -> M) -> Result<T> {
        self.map_err(|e| wrap(message().into(), Some(e.into())))
    }
}

impl<T> Context<T> for Option<T> {
    fn context(self, message: impl Into<String>) -> Result<T> {
        self.ok_or_else(|| wrap(message.into(), None))
    }

    fn with_context<M: Into<String>>(self, message: impl FnOnce() -> M) -> Result<T> {
        self.ok_or_else(|| wrap(message().into(), None))
    }
}

/// An error that is just a message (for failures with no underlying error).
pub fn error(message: impl Into<String>) -> Error {
    wrap(message.into(), None)
}

fn wrap(message: String, source: Option<Error>) -> Error {
    Box::new(WithContext { message, source })
}
