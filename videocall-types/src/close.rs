//! Why a session ended, as relays say it and clients read it.

/// Why a relay ends a session, and the close code both transports carry it in (WebSocket close
/// code, WebTransport session code): relays send it, clients read it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloseReason {
    /// The client went away or asked to leave.
    Left,
    /// The same user joined the room again; the newer session wins.
    Replaced,
    /// Nothing heard within the heartbeat timeout.
    TimedOut,
    /// The receiver could not keep up even with packets that must not be dropped.
    TooSlow,
    /// The host removed this user from the meeting.
    Removed,
    /// The host ended the meeting for everyone.
    Ended,
    /// The session sent more than its budget, or filled its share of someone's queue.
    Flooding,
}

impl CloseReason {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Left => "left",
            Self::Replaced => "replaced by a newer connection",
            Self::TimedOut => "timed out",
            Self::TooSlow => "too slow to keep up",
            Self::Removed => "removed by the host",
            Self::Ended => "the meeting has ended",
            Self::Flooding => "sending too fast",
        }
    }

    /// The close code both transports use (WebSocket close code, WebTransport session code).
    pub fn close_code(self) -> u16 {
        match self {
            Self::Left => 1000,
            Self::Replaced => 4000,
            Self::TimedOut => 4001,
            Self::TooSlow => 4002,
            Self::Removed => 4003,
            Self::Ended => 4004,
            Self::Flooding => 4005,
        }
    }

    /// The reason a close code says, if it is one of these.
    pub fn from_code(code: u16) -> Option<Self> {
        Self::ALL.into_iter().find(|r| r.close_code() == code)
    }

    /// True when the client should not reconnect: the host's decision stands.
    pub fn is_final(self) -> bool {
        matches!(self, Self::Replaced | Self::Removed | Self::Ended)
    }

    const ALL: [Self; 7] =
        [Self::Left, Self::Replaced, Self::TimedOut, Self::TooSlow, Self::Removed, Self::Ended, Self::Flooding];
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_reason_reads_back_from_its_code() {
        for reason in CloseReason::ALL {
            assert_eq!(CloseReason::from_code(reason.close_code()), Some(reason));
        }
        assert_eq!(CloseReason::from_code(1006), None);
        let finals: Vec<_> =
            CloseReason::ALL.into_iter().filter(|r| r.is_final()).map(CloseReason::close_code).collect();
        assert_eq!(finals, [4000, 4003, 4004]);
    }
}
