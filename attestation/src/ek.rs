//! EK certificate path validation (in progress).
