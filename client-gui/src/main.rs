//! `acclient-gui`: the desktop app. Runs as the user; acclientd (root)
//! owns the tunnel.

use acclient_core::stdio::line as say;
use acclient_gui::egui;
use clap::Parser;

/// acclient's desktop app: connect to an AnyConnect (IKEv2) or IKEv2 VPN
/// gateway through acclientd.
#[derive(Parser)]
#[command(name = "acclient-gui", version)]
struct Cli {
    /// Preselect this host of the profiles.
    #[arg(long)]
    host: Option<String>,
    /// Open on this tab.
    #[arg(long, value_enum, default_value = "connection")]
    tab: TabArg,
    /// Write a PNG of the window to FILE once a session is shown (or after
    /// 15 s), then quit: for bug reports and the demo under Xvfb.
    #[arg(long, value_name = "FILE")]
    screenshot: Option<std::path::PathBuf>,
    /// No tray icon.
    #[arg(long)]
    no_tray: bool,
    /// Log more (to stderr); twice for debug.
    #[arg(short, long, action = clap::ArgAction::Count)]
    verbose: u8,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum TabArg {
    Connection,
    Statistics,
    Preferences,
}

/// The app, plus `--screenshot`.
struct Shell {
    app: acclient_gui::App,
    shot: Option<std::path::PathBuf>,
    asked: bool,
    started: std::time::Instant,
}

impl eframe::App for Shell {
    fn ui(&mut self, ui: &mut egui::Ui, frame: &mut eframe::Frame) {
        self.app.ui(ui, frame);
        let Some(path) = self.shot.clone() else {
            return;
        };
        let ctx = ui.ctx().clone();
        // Settled: the agent answered and what it said is drawn (an idle
        // window, a prompt, or a session with its first statistics).
        let m = &self.app.model;
        let t = self.started.elapsed().as_secs_f32();
        let settled = m.link != acclient_gui::model::Link::Checking
            && (m.phase == acclient_gui::model::Phase::Idle
                || m.status.is_some()
                || m.pending.is_some());
        if !self.asked && ((settled && t > 1.5) || t > 15.0) {
            self.asked = true;
            let c = ctx.clone();
            ctx.send_viewport_cmd(egui::ViewportCommand::Screenshot(
                egui::ScreenshotCallback::new(move |img| {
                    let [w, h] = img.size;
                    let rgba: Vec<u8> = img
                        .pixels
                        .iter()
                        .flat_map(|c| c.to_srgba_unmultiplied())
                        .collect();
                    match image::save_buffer(
                        &path,
                        &rgba,
                        w as u32,
                        h as u32,
                        image::ExtendedColorType::Rgba8,
                    ) {
                        Ok(()) => say(format_args!("acclient-gui: wrote {}", path.display())),
                        Err(e) => say(format_args!(
                            "acclient-gui: cannot write {}: {e}",
                            path.display()
                        )),
                    }
                    c.send_viewport_cmd(egui::ViewportCommand::Close);
                    c.request_repaint();
                }),
            ));
        }
        ctx.request_repaint_after(std::time::Duration::from_millis(200));
    }
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let level = match cli.verbose {
        0 => "warn",
        1 => "info",
        _ => "debug",
    };
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(level))
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(|| acclient_core::stdio::QuietStderr)
        .init();
    if nix::unistd::geteuid().is_root() {
        say(format_args!(
            "acclient-gui: run the app as your own user, not root; acclientd does what needs root"
        ));
        return std::process::ExitCode::from(1);
    }
    let opts = eframe::NativeOptions {
        viewport: eframe::egui::ViewportBuilder::default()
            .with_title("acclient")
            .with_app_id("org.acclient.acclient")
            .with_inner_size([520.0, 560.0])
            .with_min_inner_size([420.0, 360.0]),
        ..Default::default()
    };
    let (host, shot, tray) = (cli.host, cli.screenshot, !cli.no_tray);
    let tab = match cli.tab {
        TabArg::Connection => acclient_gui::Tab::Connection,
        TabArg::Statistics => acclient_gui::Tab::Statistics,
        TabArg::Preferences => acclient_gui::Tab::Preferences,
    };
    let r = eframe::run_native(
        "acclient",
        opts,
        Box::new(move |cc| {
            let mut app = acclient_gui::App::new(
                &cc.egui_ctx,
                acclient_gui::Options {
                    host,
                    tray,
                    ..Default::default()
                },
            );
            app.tab = tab;
            Ok(Box::new(Shell {
                app,
                shot,
                asked: false,
                started: std::time::Instant::now(),
            }))
        }),
    );
    match r {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            say(format_args!("acclient-gui: cannot open the window: {e}"));
            std::process::ExitCode::from(1)
        }
    }
}
