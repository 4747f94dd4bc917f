//! Integration tests of the validation engine: report formats checked by their real
//! consumers' schemas, and the benchmark's manifest generator.

mod formats;
mod generator;
