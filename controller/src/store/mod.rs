//! Filled by the store work.
