//! Before anything starts: is every friend's port free on this machine?
//!
//! A port already taken (by a p2p-chat left running, say) would make that friend fail to start
//! and the whole demo fail in confusing ways, so the demo tries to listen on each address first
//! and names the friend whose address is taken.

use std::net::TcpListener;

use p2p_chat::peers::PeerTable;

/// Checks that every address of every friend in `table` can be listened on. The listeners are
/// closed again at once; the error names the friend, the address and why.
pub fn check_free(table: &PeerTable) -> Result<(), String> {
    for id in table.ids() {
        let peer = table.get(id);
        let addrs = peer
            .socket_addrs()
            .map_err(|e| format!("cannot resolve {}'s host {:?}: {e}", peer.name, peer.host))?;
        for addr in addrs {
            if let Err(e) = TcpListener::bind(addr) {
                let why = if e.kind() == std::io::ErrorKind::AddrInUse {
                    "the port is already in use (is a p2p-chat still running? stop it, or edit the table)"
                        .to_string()
                } else {
                    format!("{e} (the demo runs every friend on this machine)")
                };
                return Err(format!("cannot listen on {addr} for {}: {why}", peer.name));
            }
        }
    }
    Ok(())
}
