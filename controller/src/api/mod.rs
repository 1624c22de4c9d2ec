//! Filled by the api work.
