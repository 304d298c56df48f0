"""The trajectory editor's local server: `python run.py --edit [--image IMG] [run.py flags]` (docs/editor.md).

Python's standard library only. Routes, each needing the token (query ?token=, header X-Token, or the cookie
that the first page load with a valid token sets):

    GET  /, /editor.js, /editor.css   the page (static/)
    GET  /api/config                  the model's frame count, generation size, fps, steps and seed (run.py's own
                                      settings), the input image, the start trajectory, the colours of the boxes
    GET  /api/image                   the input image;  POST /api/image: a new one (raw bytes)
    POST /api/check                   {"trajectory": doc}: what guidance/trajectory.py reads from it (centres)
    POST /api/generate                {"trajectory": doc or null, "seed": n} -> {"run": id}; 409 while one runs
    GET  /api/job                     the job: state, stage, denoising step, losses; the result when done
    GET  /runs/<id>/<file>            a finished run's files: video.mp4, overlay.mp4, run.json, frames/...

Security: bound to 127.0.0.1 unless --host says otherwise; a random token on every request; static files from
static/ by a fixed list, run files only inside the output root by run id; bodies over MAX_UPLOAD get 413; one
job at a time; a failed job leaves no output folder and the server keeps serving.
"""
import copy
import hashlib
import http.cookies
import io
import json
import re
import secrets
import shutil
import sys
import tempfile
import threading
import time
import traceback
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

from PIL import Image, UnidentifiedImageError

import run
from guidance.draw import COLOURS
from guidance.trajectory import INTERPOLATIONS, JSON_TOP_FIELDS, TrajectoryError, load_trajectories, to_json
from weights import WeightsError

STATIC = Path(__file__).resolve().parent / "static"
PAGES = {"/": ("editor.html", "text/html; charset=utf-8"), "/editor.js": ("editor.js", "text/javascript"),
         "/editor.css": ("editor.css", "text/css")}
RUN_FILE_TYPES = {".mp4": "video/mp4", ".png": "image/png", ".json": "application/json"}
IMAGE_TYPES = {"PNG": "image/png", "JPEG": "image/jpeg", "WEBP": "image/webp", "GIF": "image/gif", "BMP": "image/bmp"}
MAX_UPLOAD = 32 * 2**20                                  # bytes of one request body (image or trajectory)
RUN_ID = re.compile(r"[0-9]{8}-[0-9]{6}-[0-9]{1,4}")     # run folders the editor makes: date-time-counter
SAFE_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*")   # one path part: no '..', no hidden or partial files
LOCAL_HOSTS = ("127.0.0.1", "localhost")
CSP = ("default-src 'self'; img-src 'self' blob: data:; media-src 'self'; object-src 'none'; base-uri 'none'; "
       "form-action 'none'; frame-ancestors 'none'")


class EditorError(Exception):
    """A refused request: HTTP status, a message naming the value and what was expected, and the page control
    it concerns (field: image, trajectory, seed or generate)."""

    def __init__(self, status: int, message: str, field: str = "generate"):
        super().__init__(message)
        self.status, self.field = status, field


class Cancelled(Exception):
    """Raised from the progress callback when the server stops during a job (Ctrl-C)."""


# ---------------------------------------------------------------- run.py glue: the CLI's own code path
EDITOR_FLAGS = {"--edit": 0, "--host": 1, "--port": 1, "--no-trajectory": 0}   # flag -> values it takes


def job_command(argv: list, job_flags: list) -> list:
    """The `python run.py` command line that makes the same video as a job: the editor's command line
    without its own flags, then the job's (argparse keeps the last value of a repeated flag)."""
    command, skip = ["run.py"], 0
    for token in argv:
        name = token.split("=", 1)[0]
        if skip:
            skip -= 1
        elif name in EDITOR_FLAGS:
            skip = 0 if "=" in token else EDITOR_FLAGS[name]
        else:
            command.append(token)
    return command + job_flags


def job_flags(args) -> list:
    """The flags a job sets on top of the editor's: image, trajectory (or none), seed, out."""
    trajectory = ["--no-trajectory"] if args.no_trajectory else ["--trajectory", args.trajectory]
    return ["--image", args.image, *trajectory, "--seed", str(args.seed), "--out", args.out]


def execute_job(editor, job, on_progress) -> Path:
    """Generate a job that run.prepare checked, with the networks loaded once and kept; returns --out."""
    if editor.svd is None:
        on_progress({"stage": "load"})
        editor.svd = run.load_model(job)
    return run.execute(job, editor.svd, on_progress)


def error_field(error: Exception) -> str:
    """The page control a run.py error concerns: its flag attribute if it has one, else the flag it names."""
    flag = getattr(error, "flag", None) or str(error).split(" ", 1)[0]
    return {"--seed": "seed", "--trajectory": "trajectory", "--image": "image"}.get(flag, "generate")


# ---------------------------------------------------------------- what the server holds
class Editor:
    """The base flags, the output root, the input image, the one job and its progress."""

    def __init__(self, args, argv: list):
        """args: run.py's flags (parser()), argv: the command line they came from (for each run's record).
        Everything is checked as `python run.py` checks it (run.prepare), before anything is served."""
        self.args, self.argv, self.token = args, list(argv), secrets.token_urlsafe(32)
        self.root = Path(args.out or Path("outputs") / "editor").resolve()
        check = copy.copy(args)
        check.out, check.overwrite = str(self.root / ".check"), False          # checked, never written
        job = run.prepare(check, command=[])
        self.image_path, self.image_size = job.image_path, job.image.size
        self.settings, self.model_name = job.settings, job.files.cfg.name
        self.start_doc = self.start_trajectory(job.trajectory_path)
        self.lock, self.thread, self.stopping, self.svd = threading.Lock(), None, False, None
        self.job = {"state": "idle"}

    def start_trajectory(self, path):
        """The trajectory the page opens with (--trajectory, or the bundled example's) as a JSON document."""
        if path is None:
            return None
        if path.suffix.lower() == ".json":
            return json.loads(path.read_text())
        return json.loads(to_json(load_trajectories(path, self.image_size, self.settings["frames"])))

    def config(self) -> dict:
        s = self.settings
        return {"model": self.model_name, "frames": s["frames"], "width": s["width"], "height": s["height"],
                "fps": s["fps"], "steps": s["steps"], "seed": self.args.seed, "image": self.image_info(),
                "trajectory": self.start_doc, "json_fields": list(JSON_TOP_FIELDS),
                "interpolations": list(INTERPOLATIONS), "colours": COLOURS, "max_upload": MAX_UPLOAD,
                "job": self.status()}

    def image_info(self) -> dict:
        stamp = self.image_path.stat().st_mtime_ns
        return {"url": f"/api/image?v={stamp}", "size": list(self.image_size), "name": self.image_path.name}

    def image_bytes(self) -> tuple:
        with Image.open(self.image_path) as im:
            kind = IMAGE_TYPES.get(im.format)
        if kind is None:                                    # a format browsers may not show: send a PNG copy
            buffer = io.BytesIO()
            run.read_image(self.image_path).save(buffer, format="PNG")
            return buffer.getvalue(), "image/png"
        return self.image_path.read_bytes(), kind

    def set_image(self, data: bytes, name: str) -> dict:
        """A new input image, checked as run.py reads it and kept under <root>/inputs/ by its content hash."""
        try:
            with Image.open(io.BytesIO(data)) as im:
                im.load()
                fmt, size = im.format or "PNG", im.size
        except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError) as e:
            raise EditorError(400, f"image {name!r}: cannot read it as an image ({e})", "image") from e
        folder = self.root / "inputs"
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{hashlib.sha256(data).hexdigest()[:16]}.{fmt.lower()}"
        if not path.is_file():
            with tempfile.NamedTemporaryFile(dir=folder, prefix=".upload.", delete=False) as f:
                f.write(data)
            Path(f.name).replace(path)
        with self.lock:
            self.image_path, self.image_size = path, size
        return self.image_info()

    def check(self, doc) -> dict:
        """The boxes and per-frame centres guidance/trajectory.py reads from doc, in pixels of the input image."""
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "trajectory.json"
            path.write_text(json.dumps(doc))
            try:
                traj = load_trajectories(path, self.image_size, self.settings["frames"])
            except TrajectoryError as e:
                raise EditorError(400, str(e).removeprefix(f"{path}: "), "trajectory") from e
        return {"boxes": traj.boxes.tolist(), "centres": traj.centres.tolist(), "image_size": list(traj.image_size)}

    # ------------------------------------------------------------ the job
    def start(self, request) -> dict:
        """Check and start one generation (409 while another runs); the checks run before any work."""
        if not isinstance(request, dict):
            raise EditorError(400, f"request: expected a JSON object {{\"trajectory\": ..., \"seed\": ...}}, "
                                   f"got {type(request).__name__}")
        seed, doc = request.get("seed", self.args.seed), request.get("trajectory")
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise EditorError(400, f"seed {seed!r}: expected an integer in [0, 2**63)", "seed")
        with self.lock:
            if self.job["state"] == "running":
                raise EditorError(409, f"busy: run {self.job['run']} is generating; wait for it to finish", "generate")
            run_id = self.new_run_id()
            args, trajectory = self.job_args(run_id, seed, doc)
            try:
                job = run.prepare(args, command=job_command(self.argv, job_flags(args)))
            except (run.RunError, WeightsError) as e:
                if trajectory is not None:
                    trajectory.unlink(missing_ok=True)
                message = str(e).replace(f"--trajectory {trajectory}: ", "") if trajectory else str(e)
                raise EditorError(400, message, error_field(e)) from e
            self.job = {"state": "running", "run": run_id, "stage": "start", "step": None,
                        "steps": self.settings["steps"], "losses": None, "loss_step": None}
            self.thread = threading.Thread(target=self.work, args=(job, run_id, trajectory), daemon=True)
            self.thread.start()
        print(f"editor: run {run_id} started", file=sys.stderr, flush=True)
        return {"run": run_id}

    def new_run_id(self) -> str:
        stamp, n = time.strftime("%Y%m%d-%H%M%S"), 1
        while (self.root / f"{stamp}-{n}").exists() or (self.root / "inputs" / f"{stamp}-{n}.json").exists():
            n += 1
        return f"{stamp}-{n}"

    def job_args(self, run_id: str, seed: int, doc) -> tuple:
        """(run.py flags of this job, the trajectory file written for it or None): the server's flags with
        the current image, the page's trajectory (no boxes: plain SVD), the seed and <root>/<run id>."""
        args = copy.copy(self.args)
        args.image, args.out, args.seed = str(self.image_path), str(self.root / run_id), seed
        args.overwrite, args.quiet, args.edit = False, True, False
        if doc is None or (isinstance(doc, dict) and doc.get("boxes") == []):
            args.trajectory, args.no_trajectory = None, True
            return args, None
        path = self.root / "inputs" / f"{run_id}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(doc, indent=1) + "\n")
        args.trajectory, args.no_trajectory = str(path), False
        return args, path

    def work(self, job, run_id: str, trajectory) -> None:
        """The job thread: generate, then publish the result; any failure leaves no output and is reported."""
        try:
            execute_job(self, job, self.on_progress)
            result = self.result(run_id)
            state = {"state": "done", "stage": "done", "result": result}
        except Exception as e:                    # every failure is the job's: the server goes on serving
            shutil.rmtree(self.root / run_id, ignore_errors=True)
            if trajectory is not None:
                trajectory.unlink(missing_ok=True)
            if not isinstance(e, (run.RunError, WeightsError, Cancelled)):
                traceback.print_exc()
            state = {"state": "failed", "error": f"{type(e).__name__}: {e}" if not isinstance(e, run.RunError)
                     else str(e), "field": error_field(e)}
        with self.lock:
            self.job.update(state)
        print(f"editor: run {run_id} {self.job['state']}", file=sys.stderr, flush=True)

    def on_progress(self, event: dict) -> None:
        """run.py's progress events: {"stage": "denoise", "step", "steps"} and {"stage": "loss", "step", "losses"}."""
        if self.stopping:
            raise Cancelled("the editor was stopped")
        with self.lock:
            if event.get("stage") == "loss":
                self.job.update(losses=event["losses"], loss_step=event["step"])
            else:
                self.job.update({k: v for k, v in event.items() if k in ("stage", "step", "steps")})

    def status(self) -> dict:
        with self.lock:
            return copy.deepcopy(self.job)

    def result(self, run_id: str) -> dict:
        """Where the page finds a finished run's video, overlay, run.json and follow report."""
        record = json.loads((self.root / run_id / "run.json").read_text())
        base, outputs = f"/runs/{run_id}/", record["outputs"]
        folder = self.root / run_id
        shown = folder.relative_to(Path.cwd()) if folder.is_relative_to(Path.cwd()) else folder   # as typed
        return {"run": run_id, "folder": str(shown), "video": base + outputs["video"],
                "overlay": outputs.get("overlay") and base + outputs["overlay"],
                "condition": outputs.get("condition") and base + outputs["condition"],
                "run_json": base + "run.json", "follow": record.get("follow"),
                "seconds": record["timings_s"].get("total")}

    def run_file(self, parts: list):
        """The file <root>/<run id>/<parts...> of a run, or None: plain names only, resolved inside the run."""
        if len(parts) < 2 or not RUN_ID.fullmatch(parts[0]) or not all(SAFE_NAME.fullmatch(p) for p in parts[1:]):
            return None
        folder = (self.root / parts[0]).resolve()
        path = folder.joinpath(*parts[1:]).resolve()
        if not path.is_relative_to(folder) or path.suffix not in RUN_FILE_TYPES or not path.is_file():
            return None
        return path

    def stop(self, wait_s: float = 60.0) -> None:
        """Cancel a running job at its next progress event and wait for it to clean up."""
        self.stopping = True
        if self.thread is not None:
            self.thread.join(wait_s)


# ---------------------------------------------------------------- HTTP
class Handler(BaseHTTPRequestHandler):
    """One request: the token first, then a fixed set of routes; anything else is 404."""
    server_version = "sgi2v-editor"

    @property
    def editor(self) -> Editor:
        return self.server.editor

    def log_message(self, format, *args):                # the server prints its own one-line events
        pass

    def do_GET(self):
        self.answer("GET")

    def do_POST(self):
        self.answer("POST")

    def answer(self, method: str) -> None:
        url = urlsplit(self.path)
        query = parse_qs(url.query)
        if not self.authorised(query):
            return self.send(403, b"403 forbidden: this editor needs its token; open the URL that "
                                  b"'python run.py --edit' printed\n", "text/plain; charset=utf-8")
        try:
            if not self.route(method, unquote(url.path), query):
                self.send(404, b"404 not found\n", "text/plain; charset=utf-8")
        except EditorError as e:
            self.send_json(e.status, {"error": str(e), "field": e.field})
        except Exception as e:                       # a bug: say so in one line, keep serving, log the traceback
            traceback.print_exc()
            self.send_json(500, {"error": f"internal error: {type(e).__name__}: {e}", "field": "generate"})

    def authorised(self, query) -> bool:
        token = self.editor.token.encode()
        given = query.get("token", []) + [self.headers.get("X-Token") or ""]
        try:
            cookie = http.cookies.SimpleCookie(self.headers.get("Cookie") or "").get(self.cookie_name())
        except http.cookies.CookieError:
            cookie = None
        given.append(cookie.value if cookie else "")
        return any(secrets.compare_digest(v.encode(), token) for v in given if v)

    def cookie_name(self) -> str:
        return f"sgi2v_editor_{self.server.server_address[1]}"

    def route(self, method: str, path: str, query) -> bool:
        editor = self.editor
        if method == "GET" and path in PAGES:
            name, kind = PAGES[path]
            cookie = f"{self.cookie_name()}={editor.token}; HttpOnly; SameSite=Strict; Path=/"
            self.send(200, (STATIC / name).read_bytes(), kind, {"Set-Cookie": cookie} if path == "/" else {})
        elif method == "GET" and path == "/api/config":
            self.send_json(200, editor.config())
        elif method == "GET" and path == "/api/image":
            self.send(200, *editor.image_bytes())
        elif method == "GET" and path == "/api/job":
            self.send_json(200, editor.status())
        elif method == "GET" and path.startswith("/runs/"):
            file = editor.run_file(path[len("/runs/"):].split("/"))
            if file is None:
                return False
            self.send_range(file.read_bytes(), RUN_FILE_TYPES[file.suffix])
        elif method == "POST" and path == "/api/image":
            name = unquote(self.headers.get("X-Filename") or "image")
            self.send_json(200, editor.set_image(self.body(), name))
        elif method == "POST" and path == "/api/check":
            self.send_json(200, editor.check(self.json_body().get("trajectory")))
        elif method == "POST" and path == "/api/generate":
            self.send_json(202, editor.start(self.json_body()))
        else:
            return False
        return True

    def body(self) -> bytes:
        length = self.headers.get("Content-Length")
        if length is None or not length.isdigit():
            raise EditorError(411, f"request body: expected a Content-Length header, got {length!r}")
        if int(length) > MAX_UPLOAD:
            self.close_connection = True                     # the body is not read
            raise EditorError(413, f"upload of {int(length)} bytes: expected at most {MAX_UPLOAD} bytes "
                                   f"({MAX_UPLOAD // 2**20} MiB)", "image" if self.path.startswith("/api/image")
                              else "generate")
        return self.rfile.read(int(length))

    def json_body(self):
        try:
            request = json.loads(self.body())
        except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as e:
            raise EditorError(400, f"request body: expected JSON ({type(e).__name__}: {e})") from e
        if not isinstance(request, dict):
            raise EditorError(400, f"request body: expected a JSON object, got {type(request).__name__}")
        return request

    def send_range(self, data: bytes, kind: str) -> None:
        """The file, or the byte range the Range header asks for (206): browsers seek in videos this way."""
        wanted = re.fullmatch(r"bytes=([0-9]*)-([0-9]*)", self.headers.get("Range") or "")
        if wanted is None or wanted[1] == wanted[2] == "":
            return self.send(200, data, kind, {"Accept-Ranges": "bytes"})
        size = len(data)
        start, end = (int(wanted[1]), int(wanted[2] or size - 1)) if wanted[1] else (size - int(wanted[2]), size - 1)
        start, end = max(start, 0), min(end, size - 1)
        if start > end:
            return self.send(416, b"", kind, {"Content-Range": f"bytes */{size}"})
        self.send(206, data[start:end + 1], kind, {"Content-Range": f"bytes {start}-{end}/{size}",
                                                   "Accept-Ranges": "bytes"})

    def send_json(self, status: int, value) -> None:
        self.send(status, json.dumps(value).encode(), "application/json")

    def send(self, status: int, data: bytes, kind: str, headers=None) -> None:
        try:
            self.send_response(status)
            for key, value in {"Content-Type": kind, "Content-Length": str(len(data)), "Cache-Control": "no-store",
                               "X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer",
                               "Content-Security-Policy": CSP, **(headers or {})}.items():
                self.send_header(key, value)
            self.end_headers()
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):     # the browser went away (e.g. a video reloaded)
            self.close_connection = True


class EditorServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, editor: Editor, host: str, port: int):
        try:
            super().__init__((host, port), Handler)
        except OSError as e:
            raise run.RunError(f"--host {host} --port {port}: cannot listen there ({e})") from e
        self.editor = editor

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host}:{port}/?token={self.editor.token}"


def serve(argv: list) -> int:
    """`python run.py --edit ...`: check the flags and inputs, print the URL, serve until Ctrl-C (exit status
    130, also during the checks). argv: run.py's command line. It is parsed again by the `run` module's
    parser: `python run.py` runs as __main__, whose RunError and flag defaults (the --gamma sentinel) are
    other objects than run's."""
    args, server = run.parser().parse_args(argv), None
    try:
        server = EditorServer(Editor(args, argv), args.host, args.port)
        if args.host not in LOCAL_HOSTS:
            print(f"editor: warning: --host {args.host} makes the editor reachable from other machines; anyone "
                  "with the URL (its token) can run jobs on this machine", file=sys.stderr)
        print(f"editor: {server.url}  (Ctrl-C stops it)", flush=True)
        server.serve_forever()
    except (run.RunError, WeightsError) as e:
        print(f"run.py: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:                          # wherever it lands: one line, no traceback
        if server is not None:
            server.editor.stop()
        print("editor: stopped", file=sys.stderr)
        return 130
    finally:
        if server is not None:
            server.server_close()
    return 0
