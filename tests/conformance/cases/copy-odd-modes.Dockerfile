FROM busybox
COPY odd /odd
COPY odd/ /odd2/
COPY ["odd/\u00fcnicode name.txt", "/u/"]
