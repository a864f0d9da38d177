FROM busybox
COPY link-to-dir/a.txt /via-link
COPY links/up /up
COPY links/dirlink /dirlink
COPY link-to-dir/ /slash/
ADD archives/link.tar /linked-archive/
