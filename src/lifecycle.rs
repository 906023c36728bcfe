//! Why URLs are revoked (SPEC §4).

use std::fmt;

/// The cause of a URL revocation. Its [`reason`](Cause::reason) is the close
/// reason sent with code 1001 to every session of the URL.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Cause {
    /// The script was reset, recompiled or deleted.
    ScriptReset,
    /// The object was rezzed from inventory (`on_rez`).
    ObjectRezzed,
    /// The object changed region (`changed(CHANGED_REGION)`).
    RegionChange,
    /// The object's owner changed (`changed(CHANGED_OWNER)`).
    OwnerChange,
    /// The object was removed from the world (derez, delete, return).
    ObjectRemoved,
    /// The region restarted or shut down.
    RegionRestart,
    /// The script released the URL (`llReleaseWebsocket`).
    Released,
}

impl Cause {
    /// Every cause, in SPEC §4 table order.
    pub const ALL: [Cause; 7] = [
        Cause::ScriptReset,
        Cause::ObjectRezzed,
        Cause::RegionChange,
        Cause::OwnerChange,
        Cause::ObjectRemoved,
        Cause::RegionRestart,
        Cause::Released,
    ];

    /// The close reason sent with code 1001, e.g. `"script reset"`.
    pub fn reason(self) -> &'static str {
        match self {
            Cause::ScriptReset => "script reset",
            Cause::ObjectRezzed => "object rezzed",
            Cause::RegionChange => "region change",
            Cause::OwnerChange => "owner change",
            Cause::ObjectRemoved => "object removed",
            Cause::RegionRestart => "region restart",
            Cause::Released => "url released",
        }
    }
}

impl fmt::Display for Cause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.reason())
    }
}
