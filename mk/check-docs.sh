#!/usr/bin/env bash
# Check the user documentation of the device:
#  1. the libvirt examples against libvirt's domain schema (virt-xml-validate,
#     Debian package libvirt-clients; it runs xmllint from libxml2-utils and
#     reads the schemas shipped by libvirt0);
#  2. the rST page with docutils, strictly: any warning or error fails.
#     docutils does not know Sphinx's roles and directives, so the few QEMU's
#     pages use are registered here: roles (:doc:, :ref:, ...) render as
#     literals, code-block is docutils' code directive, literalinclude reads
#     the file it names (a missing file fails), toctree/index/only are
#     accepted and ignored.  Single `backticks` fail too: QEMU's Sphinx
#     configuration makes them cross-references (default_role = 'any');
#  3. the same page with Sphinx, warnings as errors (-W, as QEMU's docs build
#     with --enable-werror), in a scratch project with QEMU's settings that
#     matter for one page (default_role, suppress_warnings) and stub pages
#     for the documents it links to.  This catches what docutils cannot:
#     unresolved cross-references and code blocks that do not lex.
# Debian's python3 and its python3-docutils and python3-sphinx are used, not
# whatever python3 comes first on PATH.  Exits non-zero if any check fails.
set -uo pipefail
source "$(dirname "$0")/env.sh"

DOCS="$PROJECT_ROOT/docs/system/devices"
RST="$DOCS/vfio-cxl.rst"
# The developer page on the kernel interface, per posting.
DEVEL_RST="$PROJECT_ROOT/docs/devel/vfio-cxl-uapi.rst"
# The kernel-VFIO example and the several-devices one (validated only), and
# the vfio-user ones for x86_64 and arm64 (which mk/libvirt.sh also runs).
XMLS=("$DOCS/vfio-cxl-libvirt.xml" "$DOCS/vfio-cxl-libvirt-vfio-user.xml"
      "$DOCS/vfio-cxl-libvirt-several.xml" "$DOCS/vfio-cxl-libvirt-virt.xml")
PY=/usr/bin/python3

ensure_debs docs libvirt-clients libxml2-utils python3 python3-docutils python3-sphinx

failed=0
check() {    # name command...
    local name=$1
    shift
    if "$@"; then
        echo "docs: ok: $name"
    else
        echo "docs: FAILED: $name"
        failed=$((failed + 1))
    fi
}

# 1. The libvirt domain XML.  The schema name is given: without it the
# script guesses it from the root element.
for xml in "${XMLS[@]}"; do
    check "$(basename "$xml"): libvirt domain schema ($(virt-xml-validate --version | awk '{print $NF}'))" \
        virt-xml-validate "$xml" domain
done

# 2. docutils, strict.
docutils_check() {
    "$PY" - "$1" <<'EOF'
import io
import os
import sys

import docutils
from docutils import nodes
from docutils.core import publish_doctree
from docutils.parsers.rst import Directive, directives, roles
from docutils.parsers.rst.directives.body import CodeBlock

path = sys.argv[1]


def literal_role(name, rawtext, text, lineno, inliner, options=None, content=None):
    return [nodes.literal(rawtext, text)], []


for role in ("doc", "ref", "any", "option", "envvar", "term", "numref",
             "download", "program", "file", "command", "samp", "kbd",
             "manpage"):
    roles.register_local_role(role, literal_role)


class LiteralInclude(Directive):
    """Sphinx's literalinclude: the file must exist; it becomes a literal
    block."""
    required_arguments = 1
    has_content = False
    option_spec = {"language": directives.unchanged,
                   "caption": directives.unchanged,
                   "linenos": directives.flag}

    def run(self):
        base = os.path.dirname(self.state.document.current_source)
        target = os.path.join(base, self.arguments[0])
        if not os.path.isfile(target):
            raise self.error("literalinclude: no file %s" % target)
        with open(target, encoding="utf-8") as f:
            text = f.read()
        return [nodes.literal_block(text, text)]


class Ignored(Directive):
    """Sphinx-only directives with no content to check."""
    optional_arguments = 10
    final_argument_whitespace = True
    has_content = True
    option_spec = None

    def run(self):
        return []


# Accept any option on the ignored directives.
class AnyOptions(dict):
    def __getitem__(self, key):
        return directives.unchanged

    def __contains__(self, key):
        return True


Ignored.option_spec = AnyOptions()

directives.register_directive("code-block", CodeBlock)
directives.register_directive("sourcecode", CodeBlock)
directives.register_directive("literalinclude", LiteralInclude)
for name in ("toctree", "index", "only", "highlight", "versionadded",
             "versionchanged", "deprecated"):
    directives.register_directive(name, Ignored)

stream = io.StringIO()
with open(path, encoding="utf-8") as f:
    source = f.read()
tree = publish_doctree(
    source, source_path=path,
    settings_overrides={
        "report_level": 2,       # report warnings and errors
        "halt_level": 5,         # but collect them all
        "warning_stream": stream,
        "syntax_highlight": "none",
        "input_encoding": "utf-8",
    })
problems = stream.getvalue().strip().splitlines()
for ref in tree.findall(nodes.title_reference):
    line = ref.line or (ref.parent.line if ref.parent is not None else None)
    problems.append("%s:%s: single backticks around %r: QEMU's default "
                    "role 'any' makes this a cross-reference; use ``double "
                    "backticks``" % (path, line or "?", ref.astext()))
for p in problems:
    print(p)
print("docutils %s: %d section(s), %d literal block(s), %d problem(s)" % (
    docutils.__version__, len(list(tree.findall(nodes.section))),
    len(list(tree.findall(nodes.literal_block))), len(problems)))
sys.exit(1 if problems else 0)
EOF
}
for page in "$RST" "$DEVEL_RST"; do
    check "$(basename "$page"): docutils, warnings are errors" docutils_check "$page"
done

# 3. Sphinx, -W.
sphinx_check() {
    local tmp rc
    tmp=$(mktemp -d)
    mkdir -p "$tmp/src/devices" "$tmp/src/devel"
    cp "$RST" "${XMLS[@]}" "$tmp/src/devices/"
    cp "$DEVEL_RST" "$tmp/src/devel/"
    cat > "$tmp/src/conf.py" <<'EOF'
# The settings of QEMU's docs/conf.py that affect a single page.
project = 'QEMU'
master_doc = 'index'
source_suffix = '.rst'
default_role = 'any'
suppress_warnings = ['ref.option']
pygments_style = 'sphinx'
EOF
    cat > "$tmp/src/index.rst" <<'EOF'
Scratch project
===============

.. toctree::

   devices/vfio-cxl
   devel/vfio-cxl-uapi
   devices/cxl
   devices/vfio-user
EOF
    # Stubs for the pages vfio-cxl.rst links to.
    printf 'Compute Express Link (CXL)\n==========================\n' > "$tmp/src/devices/cxl.rst"
    printf 'vfio-user\n=========\n' > "$tmp/src/devices/vfio-user.rst"
    # Messages name the real file, not the scratch copy.
    "$PY" -m sphinx -b html -W --keep-going -q -E -d "$tmp/doctrees" \
        "$tmp/src" "$tmp/html" 2>&1 |
        sed -e "s#$tmp/src/devices#$DOCS#g" -e "s#$tmp/src/devel#$PROJECT_ROOT/docs/devel#g"
    rc=${PIPESTATUS[0]}
    [ $rc -eq 0 ] && [ -s "$tmp/html/devices/vfio-cxl.html" ] &&
        [ -s "$tmp/html/devel/vfio-cxl-uapi.html" ] || rc=1
    [ $rc -eq 0 ] && echo "sphinx $("$PY" -c 'import sphinx; print(sphinx.__version__)'): built devices/vfio-cxl.html"
    rm -rf "$tmp"
    return $rc
}
check "$(basename "$RST"), $(basename "$DEVEL_RST"): Sphinx -W" sphinx_check

if [ $failed -ne 0 ]; then
    echo "docs: $failed check(s) failed"
    exit 1
fi
echo "docs: all checks passed"
