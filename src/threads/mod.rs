//! p2p-chat's driver of the model: threads that each block on one thing, and a dispatcher that
//! ties them together with `select!` over channels. [`crate::run`] starts them; the shutdown
//! order is in the crate's documentation. p2p-chat-select drives the same model from one poll()
//! loop, in `src/bin/select/`.
//!
//! * [`dispatcher`]: owns the friends' models and the link carrying out each one's I/O.
//! * [`link`]: one per connection we open, owning it, with its ack reader.
//! * [`acceptor`]: blocks in `accept`, admits connections, spawns a reader for each.
//! * [`reader`]: one per inbound connection.
//! * [`console`]: reads stdin (lines, or keys in a terminal).

pub mod acceptor;
pub mod console;
pub mod dispatcher;
pub mod link;
pub mod reader;
