//! Who may use the agent (docs/design.md §14): peers are known by the credentials the kernel gives for the
//! socket (SO_PEERCRED: uid, primary gid, pid), which a peer cannot forge. Root and the agent's own uid are
//! always allowed; others only by `--allow-uid` / `--allow-gid`. SO_PEERCRED carries the peer's primary
//! gid only, so `--allow-gid` matches the group a client runs as, not its supplementary groups.

/// A peer's kernel-reported credentials.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PeerCred {
    pub uid: u32,
    pub gid: u32,
    pub pid: Option<i32>,
}

/// The allow-list.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PeerPolicy {
    /// The agent's own (effective) uid.
    pub own_uid: u32,
    pub uids: Vec<u32>,
    pub gids: Vec<u32>,
}

/// A peer the policy does not allow.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("peer uid {uid} gid {gid}{pid} is not allowed to use this agent (allowed: {allowed}); the operator can add it with runtrust agent --allow-uid UID or --allow-gid GID")]
pub struct PeerRefused {
    pub uid: u32,
    pub gid: u32,
    pub pid: String,
    pub allowed: String,
}

impl PeerPolicy {
    /// Allows root, the agent's own uid, and the listed uids and gids.
    pub fn authorize(&self, peer: &PeerCred) -> Result<(), PeerRefused> {
        if peer.uid == 0 || peer.uid == self.own_uid || self.uids.contains(&peer.uid) || self.gids.contains(&peer.gid) {
            return Ok(());
        }
        Err(PeerRefused {
            uid: peer.uid,
            gid: peer.gid,
            pid: peer.pid.map(|p| format!(" (pid {p})")).unwrap_or_default(),
            allowed: self.describe(),
        })
    }

    /// The allowed uids and gids, for messages and the startup log.
    pub fn describe(&self) -> String {
        let mut uids = vec![0, self.own_uid];
        uids.extend(&self.uids);
        uids.sort_unstable();
        uids.dedup();
        let mut out = format!("uid {}", uids.iter().map(u32::to_string).collect::<Vec<_>>().join(","));
        if !self.gids.is_empty() {
            out.push_str(&format!(", gid {}", self.gids.iter().map(u32::to_string).collect::<Vec<_>>().join(",")));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peer(uid: u32, gid: u32) -> PeerCred {
        PeerCred { uid, gid, pid: Some(4242) }
    }

    #[test]
    fn root_and_own_uid_by_default_others_refused() {
        let policy = PeerPolicy { own_uid: 998, uids: vec![], gids: vec![] };
        assert!(policy.authorize(&peer(0, 0)).is_ok());
        assert!(policy.authorize(&peer(998, 998)).is_ok());
        let refused = policy.authorize(&peer(1000, 1000)).unwrap_err();
        assert_eq!((refused.uid, refused.gid), (1000, 1000));
        let text = refused.to_string();
        assert!(text.contains("uid 1000 gid 1000 (pid 4242) is not allowed"), "{text}");
        assert!(text.contains("allowed: uid 0,998"), "{text}");
        assert!(text.contains("--allow-uid"), "{text}");
    }

    #[test]
    fn listed_uids_and_primary_gids_are_allowed() {
        let policy = PeerPolicy { own_uid: 0, uids: vec![1001], gids: vec![2000] };
        assert!(policy.authorize(&peer(1001, 1)).is_ok());
        assert!(policy.authorize(&peer(1002, 2000)).is_ok());
        assert!(policy.authorize(&peer(1002, 2001)).is_err());
        assert_eq!(policy.describe(), "uid 0,1001, gid 2000");
    }
}
