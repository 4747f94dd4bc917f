//! The validation engine's integration tests: fixtures and the shared corpus, through the
//! public API, one module per engine module.

mod engine;
mod formats;
mod generator;
mod helm;
mod policy;
mod references;
mod render;
mod schema;
