//! Access control: who may do what, and the signatures that prove who did it (issue 15).

pub mod openpgp;
