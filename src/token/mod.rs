//! Execution tokens (DESIGN §7): in progress.
