//! Every Lua script hookd runs, in one place: the files under `lua/`, each
//! prefixed with the key and status names (`keys::lua_prelude`) and, for
//! those that move deliveries between queues, with `lua/queues.lua`. Each
//! is called from the one Store function that owns its step (settling,
//! claiming, recording, reading the stream, writing endpoints).

use redis::Script;

/// The shapes of the batched scripts' arguments: values per item and keys
/// per item, named as the scripts read them (generated into the prelude,
/// see `keys::lua_prelude`).
pub(crate) const SHAPES: &[(&str, usize)] = &[
    ("SETTLE_FIELDS", SETTLE_FIELDS),
    ("SETTLE_ENDPOINT_KEYS", 6),
    ("SETTLE_DURABLE_KEYS", 5),
    ("RECORD_FIELDS", RECORD_FIELDS),
    ("RECORD_ENDPOINT_KEYS", 4),
    ("RECORD_KEYS", 4),
    ("CLAIM_FIELDS", CLAIM_FIELDS),
    ("CLAIM_ENDPOINT_KEYS", 6),
    ("CLAIM_DELIVERY_KEYS", 2),
    ("REQUEUE_KEYS", 5),
    ("SLOT_KEYS", 3),
];

/// Values per claimed delivery in the reply of `lua/claim.lua`.
pub(crate) const CLAIM_FIELDS: usize = 13;

/// Values per delivery of `lua/settle.lua`.
pub(crate) const SETTLE_FIELDS: usize = 18;
/// Values per attempt of `lua/record.lua`.
pub(crate) const RECORD_FIELDS: usize = 12;

/// The Lua scripts, loaded once per process (redis-rs reloads them after NOSCRIPT).
pub(crate) struct Scripts {
    pub(crate) slots: Script,
    pub(crate) settle: Script,
    pub(crate) claim: Script,
    pub(crate) record: Script,
    pub(crate) resume: Script,
    pub(crate) requeue: Script,
    pub(crate) endpoint_write: Script,
    pub(crate) dead_letter: Script,
    pub(crate) pause: Script,
    pub(crate) swap_doc: Script,
    pub(crate) publish: Script,
    pub(crate) touch: Script,
    pub(crate) hand_back: Script,
    pub(crate) drop_queued: Script,
    pub(crate) prune: Script,
    pub(crate) endpoint_create: Script,
    pub(crate) sightings: Script,
    pub(crate) ready: Script,
    pub(crate) take: Script,
    pub(crate) skip: Script,
}

impl Default for Scripts {
    fn default() -> Self {
        // Every script starts with the key and status names (keys.rs), and
        // those that move deliveries between queues with queues.lua.
        let prelude = crate::keys::lua_prelude();
        let with_queues = |body: &str| {
            Script::new(&format!(
                "{prelude}{}{body}",
                include_str!("lua/queues.lua")
            ))
        };
        let plain = |body: &str| Script::new(&format!("{prelude}{body}"));
        Self {
            slots: plain(include_str!("lua/slots.lua")),
            settle: with_queues(include_str!("lua/settle.lua")),
            claim: with_queues(include_str!("lua/claim.lua")),
            record: with_queues(include_str!("lua/record.lua")),
            resume: plain(include_str!("lua/resume.lua")),
            requeue: plain(include_str!("lua/requeue.lua")),
            endpoint_write: plain(include_str!("lua/endpoint_write.lua")),
            dead_letter: plain(include_str!("lua/dead_letter.lua")),
            pause: plain(include_str!("lua/pause.lua")),
            swap_doc: plain(include_str!("lua/swap_doc.lua")),
            publish: plain(include_str!("lua/publish.lua")),
            touch: plain(include_str!("lua/touch.lua")),
            hand_back: plain(include_str!("lua/hand_back.lua")),
            drop_queued: plain(include_str!("lua/drop_queued.lua")),
            prune: plain(include_str!("lua/prune.lua")),
            endpoint_create: plain(include_str!("lua/endpoint_create.lua")),
            sightings: plain(include_str!("lua/sightings.lua")),
            ready: plain(include_str!("lua/ready.lua")),
            take: plain(include_str!("lua/take.lua")),
            skip: with_queues(include_str!("lua/skip.lua")),
        }
    }
}
