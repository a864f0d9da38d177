FROM busybox
ARG EMPTY=
ARG NOVAL
ENV A=${NOVAL:-d1} B=${EMPTY:-d2} E=${EMPTY:+set} F=${NOVAL:+set} G=${NOVAL}x H=$EMPTY.
