//! End to end against the tokio adapter in this process: the same checks as
//! for the example, plus timers, back-pressure and `WS_ERR_BUSY`, which need
//! a short config or access to the region.

mod common;

use common::echo::{example_config, start_tokio};

conformance_tests!(start_tokio(example_config()));
adapter_tests!(start_tokio);
