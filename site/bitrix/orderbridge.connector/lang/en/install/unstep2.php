<?php
/* English texts of install/unstep2.php. */
$MESS['ORDERBRIDGE_UNSTEP_OK'] = 'orderbridge is uninstalled.';
$MESS['ORDERBRIDGE_UNSTEP_ERROR'] = 'orderbridge was not uninstalled';
$MESS['ORDERBRIDGE_STEP_BACK'] = 'Back to the list';
