//! The dense, generational indices the parts of the core address each other by.
//!
//! One module of their own, so that every part can name another's entries
//! without importing the part itself. A key holds a slot and a version: an
//! index kept after its entry was removed (in a timer or a waiting line)
//! finds nothing, never the entry that reuses the slot.

slotmap::new_key_type! {
    /// A connection in `conns::Conns`.
    pub(crate) struct ConnIdx;
    /// A script's event queue in `queues::Queues`.
    pub(crate) struct ScriptIdx;
    /// A URL grant in `urls::Urls`: an object-scope URL, or a region-scope listener.
    pub(crate) struct UrlIdx;
    /// An HTTP-in request in `inflight::InFlight`.
    pub(crate) struct ReqIdx;
}
