//! Shared helpers for the integration tests: fixture paths and golden file readers.
