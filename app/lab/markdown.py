"""Text from run files (ids, config values, status messages, errors) shown inside Markdown: escaped, so that a
run folder anyone can write to cannot make every viewer's page fetch a remote image, link elsewhere, or
restyle the page (`![x](http://...)`, `:red[...]`, `$...$`)."""
import re

SPECIAL = re.compile(r"([\\`*_\[\]$~|<>])")  # links, images and :colour[...] need "[", math "$"; the rest styles


def md(text) -> str:
    """`text` as literal characters in st.markdown / st.caption / st.info and the like."""
    return SPECIAL.sub(r"\\\1", str(text))
