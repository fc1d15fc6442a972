//! Recording a meeting, by its host: the server starts the recorder (`bot record`, a participant
//! everyone sees, holding keys like anyone: the server itself cannot read a call) with a room
//! token of its own, one per meeting, and stops it with SIGTERM. The files it writes, one
//! directory per meeting, are listed with download links signed to expire; old ones are
//! deleted after the retention period; recording does not start, and the recorder stops, when
//! the disk runs low. A host (or an API caller with the host's session) gets a JPEG of a
//! participant's camera through `bot snapshot`, a participant too.
//!
//! - `POST /api/v1/meetings/{id}/recording`: start (201; 409 already recording; 507 low disk).
//! - `DELETE /api/v1/meetings/{id}/recording`: stop (200 with the files).
//! - `GET /api/v1/meetings/{id}/recording`: whether it records.
//! - `GET /api/v1/meetings/{id}/recordings`: the files, each with a `url` that expires.
//! - `GET /api/v1/recordings/{id}/{file}?token=…`: the file (403 once the link expired).
//! - `GET /api/v1/meetings/{id}/participants/{user}/snapshot`: a JPEG (504 without a keyframe).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Mutex;
use std::time::Duration;

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use serde::{Deserialize, Serialize};
use tokio::process::{Child, Command};
use videocall_relay::RoomToken;
use videocall_relay::auth::unix_now;
use videocall_types::{DisplayName, RoomId, UserId};

use super::host::hosted;
use super::signed::{Expiring, SignedClaims};
use super::{ApiResult, internal, issue_room_token};
use crate::AppState;
use crate::error::ApiError;

const LINK_PURPOSE: &str = "recording download";
/// How long a stopped recorder has to end its files (write their last fragment and index)
/// before it is killed; it needs well under a second.
const STOP_GRACE: Duration = Duration::from_secs(10);
/// How long a snapshot may take: joining, the key exchange, a keyframe asked for and sent.
const SNAPSHOT_TIMEOUT_SECS: u64 = 15;
/// The name everyone sees for the recorder and for a snapshot taker.
const RECORDER_NAME: &str = "Recorder";
const SNAPSHOT_NAME: &str = "Snapshot";

/// The recorders this server started, by meeting.
#[derive(Default)]
pub struct Recorders {
    running: Mutex<HashMap<String, Child>>,
}

impl Recorders {
    /// Whether `meeting` has a recorder still running (one that exited is forgotten).
    fn running(&self, meeting: &str) -> bool {
        let mut running = self.running.lock().unwrap_or_else(|e| e.into_inner());
        match running.get_mut(meeting).map(Child::try_wait) {
            Some(Ok(None)) => true,
            Some(_) => {
                running.remove(meeting);
                false
            }
            None => false,
        }
    }
}

/// Where `meeting`'s recordings go.
fn meeting_dir(state: &AppState, meeting: &str) -> PathBuf {
    state.config.recordings_dir().join(meeting)
}

/// The recorder binary: a path as given, else a file of that name beside this server's binary,
/// else the name (looked up on PATH).
fn recorder_binary(state: &AppState) -> PathBuf {
    let configured = &state.config.recorder_bin;
    if configured.components().count() > 1 {
        return configured.clone();
    }
    std::env::current_exe()
        .ok()
        .and_then(|exe| Some(exe.parent()?.join(configured)))
        .filter(|candidate| candidate.is_file())
        .unwrap_or_else(|| configured.clone())
}

/// This server's plain HTTP address, for a recorder on the same machine.
fn own_url(state: &AppState) -> ApiResult<String> {
    let addr = state.http_addr.get().ok_or_else(|| internal("http_addr", "not listening yet"))?;
    let ip = if addr.ip().is_unspecified() { "127.0.0.1".to_owned() } else { addr.ip().to_string() };
    Ok(format!("http://{ip}:{}", addr.port()))
}

/// A room token for a process of the server's own in `meeting`: the recorder (`recorder`:
/// everyone is shown it records), a snapshot taker.
fn own_token(state: &AppState, meeting: &str, who: &str, name: &str, recorder: bool) -> ApiResult<String> {
    let room = RoomId::parse(meeting).map_err(|e| internal("room_id", e))?;
    let suffix: u64 = rand::random();
    let user = UserId::parse(&format!("{who}-{suffix:016x}")).map_err(|e| internal("user_id", e))?;
    let name = DisplayName::parse(name).map_err(|e| internal("display_name", e))?;
    let grant = RoomToken { user, room, name, expires_at: 0, id: RoomToken::fresh_id(), recorder };
    let view = issue_room_token(state, grant)?;
    serde_json::to_string(&view).map_err(|e| internal("token_json", e))
}

fn free_mib(dir: &Path) -> ApiResult<u64> {
    let stat = nix::sys::statvfs::statvfs(dir).map_err(|e| internal("statvfs", e))?;
    Ok(stat.blocks_available() as u64 * stat.fragment_size() as u64 / 1024 / 1024)
}

#[derive(Serialize)]
struct RecordingState {
    recording: bool,
}

/// `POST /api/v1/meetings/{id}/recording`
pub async fn start(req: HttpRequest, state: web::Data<AppState>, id: web::Path<String>) -> ApiResult<HttpResponse> {
    let meeting = hosted(&req, &state, &id).await?;
    if state.recorders.running(&meeting.id) {
        return Err(ApiError::new(StatusCode::CONFLICT, "already_recording", "this meeting is being recorded"));
    }
    let dir = meeting_dir(&state, &meeting.id);
    std::fs::create_dir_all(&dir).map_err(|e| internal("recordings_dir", e))?;
    let (free, wanted) = (free_mib(&dir)?, state.config.recordings_min_free_mb);
    if free < wanted {
        return Err(ApiError::new(
            StatusCode::INSUFFICIENT_STORAGE,
            "disk_full",
            format!("{free} MiB free where recordings go, less than the {wanted} MiB recording keeps free"),
        ));
    }
    let token = own_token(&state, &meeting.id, "recorder", RECORDER_NAME, true)?;
    let child = Command::new(recorder_binary(&state))
        .args(["record", "--server", &own_url(&state)?, "--room", &meeting.id, "--name", RECORDER_NAME])
        .arg("--out")
        .arg(&dir)
        .args(["--min-free-mb", &wanted.to_string()])
        .env("BOT_ROOM_TOKEN", token)
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| {
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "recorder_unavailable",
                format!("the recorder ({}) did not start: {e}", recorder_binary(&state).display()),
            )
        })?;
    let mut running = state.recorders.running.lock().unwrap_or_else(|e| e.into_inner());
    if running.contains_key(&meeting.id) {
        // Started twice at once: the other one stands.
        return Err(ApiError::new(StatusCode::CONFLICT, "already_recording", "this meeting is being recorded"));
    }
    running.insert(meeting.id.clone(), child);
    tracing::info!(meeting = %meeting.id, dir = %dir.display(), "recording started");
    Ok(HttpResponse::Created().json(RecordingState { recording: true }))
}

/// `GET /api/v1/meetings/{id}/recording`
pub async fn status(req: HttpRequest, state: web::Data<AppState>, id: web::Path<String>) -> ApiResult<HttpResponse> {
    let meeting = hosted(&req, &state, &id).await?;
    Ok(HttpResponse::Ok().json(RecordingState { recording: state.recorders.running(&meeting.id) }))
}

/// `DELETE /api/v1/meetings/{id}/recording`
pub async fn stop(req: HttpRequest, state: web::Data<AppState>, id: web::Path<String>) -> ApiResult<HttpResponse> {
    let meeting = hosted(&req, &state, &id).await?;
    let child = state.recorders.running.lock().unwrap_or_else(|e| e.into_inner()).remove(&meeting.id);
    let Some(mut child) = child else {
        return Err(ApiError::new(StatusCode::CONFLICT, "not_recording", "this meeting is not being recorded"));
    };
    if let Some(pid) = child.id() {
        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), nix::sys::signal::Signal::SIGTERM);
    }
    match tokio::time::timeout(STOP_GRACE, child.wait()).await {
        Ok(status) => tracing::info!(meeting = %meeting.id, ?status, "recording stopped"),
        Err(_) => {
            tracing::warn!(meeting = %meeting.id, "the recorder did not stop in time; killed");
            let _ = child.kill().await;
        }
    }
    list_response(&state, &meeting.id)
}

#[derive(Serialize, Deserialize)]
struct LinkClaims {
    meeting: String,
    file: String,
    exp: u64,
}

impl Expiring for LinkClaims {
    fn expires_at(&self) -> u64 {
        self.exp
    }
}

/// The listing the recorder keeps beside each file (`bot record`'s `FileSummary`).
#[derive(Serialize, Deserialize)]
struct Listing {
    file: String,
    participant: String,
    stream: String,
    codec: String,
    started_ms: u64,
    duration_ms: u64,
    complete: bool,
}

#[derive(Serialize)]
struct RecordingView {
    #[serde(flatten)]
    listing: Listing,
    /// The file's size now (the listing's may lag a recording under way).
    bytes: u64,
    /// Download link, valid until `url_expires_at` (seconds since the Unix epoch).
    url: String,
    url_expires_at: u64,
}

fn list_response(state: &AppState, meeting: &str) -> ApiResult<HttpResponse> {
    let dir = meeting_dir(state, meeting);
    let signer = SignedClaims::new(&state.tokens, LINK_PURPOSE);
    let exp = unix_now() + state.config.recording_link_ttl_secs;
    let mut views = Vec::new();
    for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if !path.to_string_lossy().ends_with(".mp4.json") {
            continue;
        }
        let Some(listing) = std::fs::read(&path).ok().and_then(|b| serde_json::from_slice::<Listing>(&b).ok()) else {
            continue;
        };
        let Ok(meta) = std::fs::metadata(dir.join(&listing.file)) else { continue };
        let token = signer.sign(&LinkClaims { meeting: meeting.to_owned(), file: listing.file.clone(), exp })?;
        views.push(RecordingView {
            url: format!("/api/v1/recordings/{meeting}/{}?token={token}", listing.file),
            url_expires_at: exp,
            bytes: meta.len(),
            listing,
        });
    }
    views.sort_by(|a, b| (a.listing.started_ms, &a.listing.file).cmp(&(b.listing.started_ms, &b.listing.file)));
    Ok(HttpResponse::Ok().json(views))
}

/// `GET /api/v1/meetings/{id}/recordings`
pub async fn list(req: HttpRequest, state: web::Data<AppState>, id: web::Path<String>) -> ApiResult<HttpResponse> {
    let meeting = hosted(&req, &state, &id).await?;
    list_response(&state, &meeting.id)
}

#[derive(Deserialize)]
pub struct LinkQuery {
    token: String,
}

/// `GET /api/v1/recordings/{id}/{file}?token=…`: no session needed, the link is the key.
pub async fn download(
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
    query: web::Query<LinkQuery>,
) -> ApiResult<HttpResponse> {
    let (meeting, file) = path.into_inner();
    let signer = SignedClaims::new(&state.tokens, LINK_PURPOSE);
    let forbidden =
        || ApiError::new(StatusCode::FORBIDDEN, "bad_link", "this download link is not valid or has expired");
    let claims = signer.read::<LinkClaims>(&query.token, unix_now()).ok_or_else(forbidden)?;
    if claims.meeting != meeting || claims.file != file {
        return Err(forbidden());
    }
    // The signed name was listed from the directory; it is still checked to be a plain name.
    if file.contains('/') || file.starts_with('.') || !file.ends_with(".mp4") {
        return Err(forbidden());
    }
    let named = actix_files::NamedFile::open_async(meeting_dir(&state, &meeting).join(&file))
        .await
        .map_err(|_| ApiError::new(StatusCode::NOT_FOUND, "recording_not_found", "this recording is gone"))?;
    Ok(named.set_content_type("video/mp4".parse().expect("a media type")).into_response(&req))
}

/// Deletes recordings (and their listings) last written more than the retention period ago.
/// Returns how many files went.
pub fn apply_retention(dir: &Path, retention: Duration) -> usize {
    let mut deleted = 0;
    let meetings = std::fs::read_dir(dir).into_iter().flatten().flatten();
    for file in meetings.flat_map(|m| std::fs::read_dir(m.path()).into_iter().flatten().flatten()) {
        let path = file.path();
        let old =
            file.metadata().and_then(|m| m.modified()).is_ok_and(|t| t.elapsed().is_ok_and(|age| age > retention));
        if old && path.extension().is_some_and(|e| e == "mp4") {
            if std::fs::remove_file(&path).is_ok() {
                deleted += 1;
            }
            let _ = std::fs::remove_file(path.with_extension("mp4.json"));
        }
    }
    deleted
}

/// `GET /api/v1/meetings/{id}/participants/{user}/snapshot`: a JPEG of that participant's camera.
pub async fn snapshot(
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
) -> ApiResult<HttpResponse> {
    let (id, user) = path.into_inner();
    let meeting = hosted(&req, &state, &id).await?;
    let participant = state
        .store
        .participant(&meeting.id, &user)
        .await
        .map_err(super::session::internal_store)?
        .ok_or_else(|| {
            ApiError::new(StatusCode::NOT_FOUND, "participant_not_found", format!("{user:?} is not in this meeting"))
        })?;
    let out = tempfile_path(&meeting.id);
    let token = own_token(&state, &meeting.id, "snapshot", SNAPSHOT_NAME, false)?;
    let run = Command::new(recorder_binary(&state))
        .args(["snapshot", "--server", &own_url(&state)?, "--room", &meeting.id, "--name", SNAPSHOT_NAME])
        .args(["--participant", &participant.user_id, "--timeout", &SNAPSHOT_TIMEOUT_SECS.to_string()])
        .arg("--out")
        .arg(&out)
        .env("BOT_ROOM_TOKEN", token)
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output()
        .await
        .map_err(|e| ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "recorder_unavailable", e.to_string()))?;
    let jpeg = std::fs::read(&out);
    let _ = std::fs::remove_file(&out);
    match (run.status.success(), jpeg) {
        (true, Ok(jpeg)) => Ok(HttpResponse::Ok().content_type("image/jpeg").body(jpeg)),
        _ => Err(ApiError::new(
            StatusCode::GATEWAY_TIMEOUT,
            "no_picture",
            format!(
                "no picture from {}'s camera: {}",
                participant.display_name,
                String::from_utf8_lossy(&run.stderr).lines().last().unwrap_or("the snapshot failed")
            ),
        )),
    }
}

fn tempfile_path(meeting: &str) -> PathBuf {
    let n: u64 = rand::random();
    std::env::temp_dir().join(format!("snapshot-{meeting}-{n:016x}.jpg"))
}

#[cfg(test)]
mod tests {
    use std::time::SystemTime;

    use super::*;

    #[test]
    fn recordings_past_retention_go_with_their_listings_and_the_rest_stay() {
        let dir = std::env::temp_dir().join(format!("retention-{}", std::process::id()));
        let meeting = dir.join("abc-defg-hij");
        std::fs::create_dir_all(&meeting).unwrap();
        let day = Duration::from_secs(86_400);
        for (name, age) in [("old.mp4", 10 * day), ("new.mp4", day)] {
            let file = std::fs::File::create(meeting.join(name)).unwrap();
            file.set_modified(SystemTime::now() - age).unwrap();
            std::fs::write(meeting.join(name).with_extension("mp4.json"), b"{}").unwrap();
        }
        assert_eq!(apply_retention(&dir, 7 * day), 1);
        let left: Vec<_> = std::fs::read_dir(&meeting).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(left.len(), 2, "{left:?}");
        assert!(meeting.join("new.mp4").exists() && meeting.join("new.mp4.json").exists());
        assert_eq!(apply_retention(&dir, 7 * day), 0);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
