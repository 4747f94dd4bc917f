//! The four PATCH flavours and the field ownership they share.

pub mod apply;
pub mod fields;
pub mod json;
pub mod keys;
pub mod merge;
pub mod strategic;
