//! Integration and fixture tests of the validation engine, one module per engine module.

mod schema;
