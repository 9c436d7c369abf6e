# Shared by get_caffe_model.sh and get_keras_model.sh (sourced, not run): download a model file
# next to its destination from the first of its sources that gives a file the caller's
# `check FILE` accepts.

download() {  # url file
    if command -v curl >/dev/null 2>&1; then
        curl -fL --retry 3 -o "$2" "$1"
    elif command -v wget >/dev/null 2>&1; then
        wget -O "$2" "$1"
    else
        echo "error: neither curl nor wget is installed" >&2
        exit 1
    fi
}

fetch_checked() {  # dest url...: keep a good file already there, else try each url in order
    local dest="$1" url
    shift
    mkdir -p "$(dirname "$dest")"
    if [ -f "$dest" ] && check "$dest" 2>/dev/null; then
        echo "$dest is already there and checked"
        exit 0
    fi
    for url in "$@"; do
        echo "downloading $url"
        if ! download "$url" "$dest.part"; then
            echo "could not download $url" >&2
        elif check "$dest.part"; then
            mv "$dest.part" "$dest"
            echo "saved and checked $dest"
            exit 0
        fi
        rm -f "$dest.part"  # a partial or wrong file: the next source starts afresh
    done
    echo "error: none of the $# sources gave the expected file (no internet access, or the file" \
         "moved): $*; download it by hand and put it at $dest" >&2
    exit 1
}
