//! End to end against the std adapter in this process: the same checks as
//! for the example, plus timers, back-pressure and `WS_ERR_BUSY`, which need
//! a short config or access to the region.

mod e2e_support;

use e2e_support::echo::{example_config, start_std};

conformance_tests!(start_std(example_config()));
adapter_tests!(start_std);
