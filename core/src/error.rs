//! The error type at the line between selflet and user code.

/// What user code (native abilities, predictors) returns when it fails: any error, boxed. The
/// framework turns it into a typed error of its own, with the user's error as its source.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;
