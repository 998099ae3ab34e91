<?php
/* English texts of install/step.php. */
$MESS['ORDERBRIDGE_STEP_INSTALL_OK'] = 'orderbridge is installed. Set it up in Settings → Module settings → orderbridge.';
$MESS['ORDERBRIDGE_STEP_INSTALL_ERROR'] = 'orderbridge was not installed';
$MESS['ORDERBRIDGE_STEP_BACK'] = 'Back to the list';
