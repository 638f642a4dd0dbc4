//! Links every exporter crate compiled in (cargo features of the `usage` facade, all
//! on by default; `file` always: `usage report` reads its layout).

pub(crate) fn link_all() {
    usage::link_exporters();
}
