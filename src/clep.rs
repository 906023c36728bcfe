//! CLEP channel hash (SPEC §7). Placeholder: being written.
