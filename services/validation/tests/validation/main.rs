//! Integration tests of the validation engine, on fixture files under tests/fixtures.

mod policy;
