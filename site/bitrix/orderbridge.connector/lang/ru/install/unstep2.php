<?php
/* Русские тексты install/unstep2.php. */
$MESS['ORDERBRIDGE_UNSTEP_OK'] = 'orderbridge удалён.';
$MESS['ORDERBRIDGE_UNSTEP_ERROR'] = 'orderbridge не удалён';
$MESS['ORDERBRIDGE_STEP_BACK'] = 'Вернуться в список';
