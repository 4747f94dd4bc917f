//! The validation engine's integration tests: fixtures and the shared corpus, through the
//! public API.

mod references;
