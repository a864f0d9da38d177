FROM busybox
LABEL a=1 "b c"=2 d="x y"
LABEL e f g
LABEL a=override
