//! Announces the service on the LAN by multicast DNS, so the office opens
//! `http://postroom.local:8080/` from any OS without configuring anything.
//!
//! Owns: the mDNS responder (mdns-sd, its own thread): the host name `NAME.local` with
//! every address of the machine, an `_http._tcp` service record for the web UI and an
//! `_https._tcp` one for its HTTPS front.
//! Must not: announce anything when the web server listens only on loopback, or stop the
//! service when multicast is unavailable (a warning is logged instead).

use std::net::SocketAddr;

/// Default host name announced (`postroom.local`).
pub const DEFAULT_NAME: &str = "postroom";

/// A running announcement; dropping it (or `stop`) withdraws it.
pub struct Announcer {
    daemon: mdns_sd::ServiceDaemon,
    fullnames: Vec<String>,
}

/// Checks a host label: letters, digits and inner hyphens, at most 63 bytes.
pub fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 63
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        && !name.starts_with('-')
        && !name.ends_with('-')
}

/// Starts announcing `NAME.local`, the web UI at `web` (`_http._tcp`) and, when it
/// runs, its HTTPS front at `https` (`_https._tcp`). Returns `Ok(None)` when `web` is a
/// loopback address (nobody else could reach it); an HTTPS front on loopback is left out.
pub fn announce(
    name: &str,
    web: SocketAddr,
    https: Option<SocketAddr>,
) -> Result<Option<Announcer>, String> {
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
    let https = https.filter(|a| !a.ip().is_loopback());
    let mut services = vec![("_http._tcp.local.", web.port())];
    services.extend(https.map(|a| ("_https._tcp.local.", a.port())));
    let mut fullnames = Vec::new();
    for (ty, port) in services {
        let info = mdns_sd::ServiceInfo::new(ty, "Postroom", &host, "", port, &properties[..])
            .map_err(|e| format!("cannot describe the mDNS service {ty}: {e}"))?
            .enable_addr_auto();
        fullnames.push(info.get_fullname().to_owned());
        daemon
            .register(info)
            .map_err(|e| format!("cannot announce {host} by mDNS: {e}"))?;
    }
    let http_url = format!("http://{name}.local:{}/", web.port());
    match https {
        Some(a) => log::info!(
            "mDNS: announcing https://{name}.local:{}/ (and {http_url}) on the local network",
            a.port()
        ),
        None => log::info!("mDNS: announcing {http_url} on the local network"),
    }
    Ok(Some(Announcer { daemon, fullnames }))
}

impl Announcer {
    /// Withdraws the announcement (goodbye packets) and stops the responder thread.
    pub fn stop(self) {
        for fullname in &self.fullnames {
            if let Ok(rx) = self.daemon.unregister(fullname) {
                let _ = rx.recv_timeout(std::time::Duration::from_secs(2));
            }
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
        let a = announce(
            "postroom",
            "127.0.0.1:8080".parse().unwrap(),
            Some("0.0.0.0:8443".parse().unwrap()),
        )
        .unwrap();
        assert!(a.is_none());
    }
}
