//! Region-scope envelope (SPEC §6). Placeholder: being written.
