# The load_module file is gone: reload a running nginx without the module.
if [ $1 -eq 0 ]; then
    /usr/bin/systemctl reload nginx.service >/dev/null 2>&1 || :
fi
