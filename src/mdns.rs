//! Announces the service on the LAN by multicast DNS, so the office opens
//! `http://postroom.local:8080/` from any OS without configuring anything.
//!
//! Owns: the mDNS responder (mdns-sd, its own thread): the host name `NAME.local` with
//! every address of the machine, and an `_http._tcp` service record for the web UI.
//! Must not: announce anything when the web server listens only on loopback, or stop the
//! service when multicast is unavailable (a warning is logged instead).

use std::net::SocketAddr;

/// Default host name announced (`postroom.local`).
pub const DEFAULT_NAME: &str = "postroom";

/// A running announcement; dropping it (or `stop`) withdraws it.
pub struct Announcer {
    daemon: mdns_sd::ServiceDaemon,
    fullname: String,
}

/// Checks a host label: letters, digits and inner hyphens, at most 63 bytes.
pub fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 63
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        && !name.starts_with('-')
        && !name.ends_with('-')
}

/// Starts announcing `NAME.local` and the web UI at `web`. Returns `Ok(None)` when
/// `web` is a loopback address (nobody else could reach it).
pub fn announce(name: &str, web: SocketAddr) -> Result<Option<Announcer>, String> {
    if web.ip().is_loopback() {
        return Ok(None);
    }
    if !valid_name(name) {
        return Err(format!(
            "mDNS name {name:?} is not a usable host name: use letters, digits and hyphens (e.g. postroom)"
        ));
    }
    let daemon = mdns_sd::ServiceDaemon::new()
        .map_err(|e| format!("cannot start the mDNS responder: {e}"))?;
    let host = format!("{name}.local.");
    let properties = [("path", "/"), ("version", env!("CARGO_PKG_VERSION"))];
    let info = mdns_sd::ServiceInfo::new(
        "_http._tcp.local.",
        "Postroom",
        &host,
        "",
        web.port(),
        &properties[..],
    )
    .map_err(|e| format!("cannot describe the mDNS service: {e}"))?
    .enable_addr_auto();
    let fullname = info.get_fullname().to_owned();
    daemon
        .register(info)
        .map_err(|e| format!("cannot announce {host} by mDNS: {e}"))?;
    log::info!(
        "mDNS: announcing http://{name}.local:{}/ on the local network",
        web.port()
    );
    Ok(Some(Announcer { daemon, fullname }))
}

impl Announcer {
    /// Withdraws the announcement (goodbye packets) and stops the responder thread.
    pub fn stop(self) {
        if let Ok(rx) = self.daemon.unregister(&self.fullname) {
            let _ = rx.recv_timeout(std::time::Duration::from_secs(2));
        }
        if let Ok(rx) = self.daemon.shutdown() {
            let _ = rx.recv_timeout(std::time::Duration::from_secs(2));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_host_labels() {
        assert!(valid_name("postroom"));
        assert!(valid_name("office-2"));
        assert!(!valid_name(""));
        assert!(!valid_name("-x"));
        assert!(!valid_name("a.b"));
        assert!(!valid_name("ü"));
        assert!(!valid_name(&"a".repeat(64)));
    }

    #[test]
    fn loopback_is_not_announced() {
        let a = announce("postroom", "127.0.0.1:8080".parse().unwrap()).unwrap();
        assert!(a.is_none());
    }
}
