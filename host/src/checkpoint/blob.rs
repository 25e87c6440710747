//! placeholder: see the helper's task
