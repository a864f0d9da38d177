FROM busybox
ENV V=/vol
VOLUME $V ${V}2 /plain
VOLUME ["$V/json", "/j2"]
