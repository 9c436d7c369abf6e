# Shared by get_caffe_model.sh and get_keras_model.sh (sourced, not run): download a model file
# next to its destination, keep it only if the caller's `check FILE` accepts it.

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

fetch_checked() {  # url dest: skip a good file already there, else download to dest.part and check
    mkdir -p "$(dirname "$2")"
    if [ -f "$2" ] && check "$2" 2>/dev/null; then
        echo "$2 is already there and checked"
        exit 0
    fi
    echo "downloading $1"
    if ! download "$1" "$2.part"; then
        rm -f "$2.part"
        echo "error: could not download $1 (no internet access, or the file moved)" >&2
        exit 1
    fi
    if ! check "$2.part"; then
        echo "error: the download is not the expected model; kept it as $2.part" >&2
        exit 1
    fi
    mv "$2.part" "$2"
    echo "saved and checked $2"
}
