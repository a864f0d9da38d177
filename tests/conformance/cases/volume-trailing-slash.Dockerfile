FROM busybox
VOLUME /data/ //double
VOLUME ["/json/", "rel"]
