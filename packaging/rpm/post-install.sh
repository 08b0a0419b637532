# As RHEL's nginx-mod-* packages: /usr/share/nginx/modules/*.conf is included by
# nginx.conf, so the module is active once a running nginx reloads.
if [ $1 -eq 1 ]; then
    /usr/bin/systemctl reload nginx.service >/dev/null 2>&1 || :
fi
