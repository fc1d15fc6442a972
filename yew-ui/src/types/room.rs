//! What the room page shows, as one reducer: the connection, the participants with their keys,
//! media state and statistics, and the chat. The call driver dispatches actions; components
//! only read.

use std::collections::BTreeMap;

pub use videocall_client::call::{Connection, Update};
use videocall_client::call::{Mode, Stage, VideoStream};

use super::stats::PeerStats;

/// The element id of `session`'s tile canvas for `stream`: the tiles render it, the call draws
/// into it.
pub fn canvas_id(stream: VideoStream, session: u64) -> String {
    match stream {
        VideoStream::Camera => format!("video-{session}"),
        VideoStream::Screen => format!("screen-{session}"),
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Participant {
    pub user: String,
    pub display_name: String,
    /// They record the room (presence says so: their token was a recorder's).
    pub recorder: bool,
    pub fingerprint: Option<String>,
    /// A different key announced for them since (the fingerprint): an alarm until accepted.
    pub key_changed: Option<String>,
    /// The media key id we hold for them.
    pub key_id: Option<u32>,
    pub audio_on: bool,
    pub video_on: bool,
    pub screen_on: bool,
    pub speaking: bool,
    pub stats: PeerStats,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ChatLine {
    /// 0: ourselves.
    pub session: u64,
    pub name: String,
    pub text: String,
}

/// Ourselves.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Me {
    pub display_name: String,
    pub fingerprint: String,
    pub key_id: u32,
    pub audio_on: bool,
    pub video_on: bool,
    pub screen_on: bool,
    pub speaking: bool,
    pub codec: String,
    pub send_bitrate_bps: u32,
    pub send_width: u32,
    pub send_height: u32,
}

#[derive(Debug, Clone, PartialEq)]
pub struct RoomState {
    pub room: String,
    pub me: Me,
    pub participants: BTreeMap<u64, Participant>,
    pub chat: Vec<ChatLine>,
    pub connection: Connection,
    /// Something to tell the user once (the host muted them, say).
    pub notice: Option<String>,
    /// The room safety code as this page sees it: the same on every page that sees the same
    /// people with the same keys.
    pub safety_code: String,
    /// Key packets refused, by reason (`videocall_client::peers::PeerState::refused`).
    pub refused: BTreeMap<String, u64>,
    /// What the page shows: grid or speaker view, the pinned person, the page, the speaker.
    pub stage: Stage,
}

#[derive(Debug, Clone)]
pub enum RoomAction {
    /// Who we are, once joining: the name chosen in the lobby and our key's fingerprint.
    Identity { display_name: String, fingerprint: String },
    /// What the call engine says changed.
    Call(Update),
    /// Periodic: each peer's statistics and whether they speak; ours.
    Stats { peers: Vec<(u64, PeerStats, bool)>, me_speaking: bool },
    /// Pin this person in the large tile (again: unpin).
    Pin(u64),
    /// The grid or the speaker view.
    Mode(Mode),
    /// Show this page (from 0).
    Page(usize),
}

impl From<Update> for RoomAction {
    fn from(update: Update) -> Self {
        Self::Call(update)
    }
}

/// Chat lines kept: older ones scroll away.
const CHAT_HISTORY: usize = 500;

impl RoomState {
    /// Someone in the room records it: every page says so while they are here.
    pub fn recording(&self) -> bool {
        self.participants.values().any(|p| p.recorder)
    }

    pub fn new(room: &str, me: Me) -> Self {
        Self {
            room: room.to_owned(),
            me,
            participants: BTreeMap::new(),
            chat: Vec::new(),
            connection: Connection::Idle,
            notice: None,
            safety_code: String::new(),
            refused: BTreeMap::new(),
            stage: Stage::default(),
        }
    }

    pub fn apply(&mut self, action: RoomAction) {
        match action {
            RoomAction::Identity { display_name, fingerprint } => {
                self.me.display_name = display_name;
                self.me.fingerprint = fingerprint;
            }
            RoomAction::Call(update) => self.update(update),
            RoomAction::Stats { peers, me_speaking } => {
                self.me.speaking = me_speaking;
                let mut heard = Vec::new();
                for (session, stats, speaking) in peers {
                    if let Some(p) = self.participants.get_mut(&session) {
                        if speaking {
                            heard.push((session, stats.audio_level));
                        }
                        p.stats = stats;
                        p.speaking = speaking;
                    }
                }
                heard.sort_by(|a, b| b.1.total_cmp(&a.1));
                self.stage.heard(&heard.into_iter().map(|(s, _)| s).collect::<Vec<_>>());
            }
            RoomAction::Pin(session) => self.stage.toggle_pin(session),
            RoomAction::Mode(mode) => self.stage.set_mode(mode),
            RoomAction::Page(page) => self.stage.set_page(page),
        }
    }

    fn update(&mut self, update: Update) {
        match update {
            Update::Connection(c) => self.connection = c,
            Update::Joined { session, user, display_name, recorder } => {
                let entry = self.participants.entry(session).or_insert_with(|| Participant {
                    user: user.clone(),
                    display_name: String::new(),
                    recorder,
                    fingerprint: None,
                    key_changed: None,
                    key_id: None,
                    audio_on: true,
                    video_on: true,
                    screen_on: false,
                    speaking: false,
                    stats: PeerStats::default(),
                });
                if !display_name.is_empty() {
                    entry.display_name = display_name;
                }
                if entry.display_name.is_empty() {
                    entry.display_name = user;
                }
            }
            Update::Left { session } => {
                self.participants.remove(&session);
                self.stage.forget(session);
            }
            Update::PeerKey { session, fingerprint } => {
                if let Some(p) = self.participants.get_mut(&session) {
                    p.fingerprint = Some(fingerprint);
                    p.key_changed = None;
                }
            }
            Update::KeyChanged { session, fingerprint } => {
                if let Some(p) = self.participants.get_mut(&session) {
                    p.key_changed = Some(fingerprint);
                }
            }
            Update::SafetyCode(code) => self.safety_code = code,
            Update::Refused(counts) => self.refused = counts,
            Update::PeerMediaKey { session, key_id } => {
                if let Some(p) = self.participants.get_mut(&session) {
                    p.key_id = Some(key_id);
                }
            }
            Update::OwnKey { key_id } => self.me.key_id = key_id,
            Update::PeerMedia { session, state } => {
                if let Some(p) = self.participants.get_mut(&session) {
                    (p.audio_on, p.video_on, p.screen_on) = (state.audio_on, state.video_on, state.screen_on);
                }
            }
            Update::Chat { session, name, text } => {
                self.chat.push(ChatLine { session, name, text });
                if self.chat.len() > CHAT_HISTORY {
                    self.chat.drain(..self.chat.len() - CHAT_HISTORY);
                }
            }
            Update::Notice(text) => self.notice = Some(text),
            Update::LocalMedia(state) => {
                (self.me.audio_on, self.me.video_on, self.me.screen_on) =
                    (state.audio_on, state.video_on, state.screen_on);
            }
            Update::Sending { codec, bitrate_bps, width, height } => {
                self.me.codec = codec;
                self.me.send_bitrate_bps = bitrate_bps;
                (self.me.send_width, self.me.send_height) = (width, height);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use videocall_client::call::MediaState;

    use super::*;

    #[test]
    fn the_room_shows_recording_while_a_recorder_is_in_it() {
        let mut s = RoomState::new("r", Me::default());
        s.apply(RoomAction::from(Update::Joined {
            session: 1,
            user: "guest-1".into(),
            display_name: "Ada".into(),
            recorder: false,
        }));
        assert!(!s.recording());
        s.apply(RoomAction::from(Update::Joined {
            session: 2,
            user: "recorder-1".into(),
            display_name: "Recorder".into(),
            recorder: true,
        }));
        assert!(s.recording());
        s.apply(Update::Left { session: 2 }.into());
        assert!(!s.recording(), "the recorder left");
    }

    #[test]
    fn participants_come_with_keys_and_go() {
        let mut s = RoomState::new("r", Me::default());
        s.apply(RoomAction::from(Update::Joined {
            session: 7,
            user: "guest-1".into(),
            display_name: "Ada".into(),
            recorder: false,
        }));
        s.apply(Update::PeerKey { session: 7, fingerprint: "ab12".into() }.into());
        s.apply(Update::PeerMediaKey { session: 7, key_id: 3 }.into());
        s.apply(
            Update::PeerMedia { session: 7, state: MediaState { audio_on: false, video_on: true, screen_on: true } }
                .into(),
        );
        let p = &s.participants[&7];
        assert_eq!((p.display_name.as_str(), p.key_id, p.audio_on, p.screen_on), ("Ada", Some(3), false, true));
        assert_eq!(p.fingerprint.as_deref(), Some("ab12"));
        // A key for someone not (or no longer) here changes nothing.
        s.apply(Update::PeerKey { session: 9, fingerprint: "x".into() }.into());
        assert!(!s.participants.contains_key(&9));
        // A changed key is an alarm on the person until accepted; the shown key stays.
        s.apply(Update::KeyChanged { session: 7, fingerprint: "cd34".into() }.into());
        let p = &s.participants[&7];
        assert_eq!((p.fingerprint.as_deref(), p.key_changed.as_deref()), (Some("ab12"), Some("cd34")));
        s.apply(Update::PeerKey { session: 7, fingerprint: "cd34".into() }.into());
        let p = &s.participants[&7];
        assert_eq!((p.fingerprint.as_deref(), p.key_changed.as_deref()), (Some("cd34"), None));
        s.apply(Update::Refused(BTreeMap::from([("unknown_session".to_owned(), 2)])).into());
        assert_eq!(s.refused["unknown_session"], 2);
        s.apply(Update::Left { session: 7 }.into());
        assert!(s.participants.is_empty());
    }

    #[test]
    fn a_nameless_participant_shows_its_user_id_and_chat_is_bounded() {
        let mut s = RoomState::new("r", Me { display_name: "Me".into(), ..Me::default() });
        s.apply(RoomAction::from(Update::Joined {
            session: 1,
            user: "guest-2".into(),
            display_name: String::new(),
            recorder: false,
        }));
        assert_eq!(s.participants[&1].display_name, "guest-2");
        for i in 0..(CHAT_HISTORY + 10) {
            s.apply(Update::Chat { session: 1, name: "x".into(), text: i.to_string() }.into());
        }
        assert_eq!(s.chat.len(), CHAT_HISTORY);
        assert_eq!(s.chat[0].text, "10");
    }

    /// The call's worker sends the engine's updates and the figures to the page as JSON: each
    /// arrives as it was sent (64-bit session ids included, which a JavaScript number would
    /// round).
    #[test]
    fn updates_and_figures_cross_from_the_worker_unchanged() {
        use videocall_client::call::TransportKind;
        let session = u64::MAX - 1;
        let updates = [
            Update::Connection(Connection::Connected { transport: TransportKind::WebTransport }),
            Update::Connection(Connection::Reconnecting { attempt: 2, delay_ms: 1000, reason: "lost".into() }),
            Update::Joined { session, user: "ada".into(), display_name: "Ada".into(), recorder: false },
            Update::KeyChanged { session, fingerprint: "cd34".into() },
            Update::PeerMedia { session, state: MediaState { audio_on: true, video_on: false, screen_on: true } },
            Update::Refused(BTreeMap::from([("bad_signature".to_owned(), 3)])),
            Update::Sending { codec: "avc1.42e028".into(), bitrate_bps: 1_500_000, width: 1280, height: 720 },
        ];
        for update in updates {
            let json = serde_json::to_string(&update).unwrap();
            assert_eq!(serde_json::from_str::<Update>(&json).unwrap(), update, "{json}");
        }
        let stats = vec![(session, PeerStats { fps: 29.5, rtt_ms: Some(12.5), ..PeerStats::default() }, true)];
        let json = serde_json::to_string(&stats).unwrap();
        assert_eq!(serde_json::from_str::<Vec<(u64, PeerStats, bool)>>(&json).unwrap(), stats);
    }
}
