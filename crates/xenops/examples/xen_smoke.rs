//! Smoke test of the Xen backend on a real dom0 (placeholder until the backend is filled in).

fn main() {
    if let Err(err) = xenops::xen::check_dom0() {
        eprintln!("{err}");
        std::process::exit(2);
    }
}
