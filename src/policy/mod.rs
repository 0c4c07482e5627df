//! Policies (DESIGN §10): in progress.
